package jetbus

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestAckResult(t *testing.T) {
	b := &Bus[int]{resource: "ore"}
	b.ackOK = []byte(`{"stream":"mainbus-ore","seq":`)
	full := `{"error":{"code":503,"err_code":10077,` +
		`"description":"maximum messages per subject exceeded"}}`
	cases := []struct {
		name string
		msg  *nats.Msg
		dup  bool
		want error // nil, or the error the result wraps
		full bool  // whether the result is a full conveyor
	}{
		{"stored", &nats.Msg{Data: []byte(`{"stream":"mainbus-ore","seq":7}`)}, false, nil,
			false},
		{"duplicate", &nats.Msg{Data: []byte(
			`{"stream":"mainbus-ore","seq":7,"duplicate":true}`)}, true, nil, false},
		{"server's duplicate", &nats.Msg{Data: []byte(
			`{"stream":"mainbus-ore","seq":7,"duplicate": true}`)}, true, nil, false},
		{"not duplicate", &nats.Msg{Data: []byte(
			`{"stream":"mainbus-ore","seq":7,"duplicate":false}`)}, false, nil, false},
		{"domain", &nats.Msg{Data: []byte(
			`{"stream":"mainbus-ore","seq":7,"domain":"hub","duplicate":true}`)}, true, nil,
			false},
		{"other stream", &nats.Msg{Data: []byte(`{"stream":"mine","seq":7}`)}, false, nil,
			false},
		{"full", &nats.Msg{Data: []byte(full)}, false, nil, true},
		{"stream and error", &nats.Msg{Data: []byte(
			`{"stream":"mainbus-ore","seq":0,"error":{"code":500,"err_code":10077,` +
				`"description":"maximum messages per subject exceeded"}}`)}, false, nil, true},
		{"no responders", &nats.Msg{Header: nats.Header{"Status": {"503"}}}, false,
			nats.ErrNoResponders, false},
		{"garbage", &nats.Msg{Data: []byte(`{"stream":`)}, false,
			jetstream.ErrInvalidJSAck, false},
		{"no stream", &nats.Msg{Data: []byte(`{"seq":7}`)}, false,
			jetstream.ErrInvalidJSAck, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dup, err := b.ackResult(tc.msg)
			if dup != tc.dup {
				t.Errorf("duplicate = %v, want %v", dup, tc.dup)
			}
			switch {
			case tc.full:
				var ae *jetstream.APIError
				if !isFull(err) || !errors.As(err, &ae) || ae.Code != 503 && ae.Code != 500 {
					t.Errorf("err = %v, want the refusal of a full conveyor", err)
				}
			case !errors.Is(err, tc.want):
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func BenchmarkAckResult(b *testing.B) {
	bus := &Bus[int]{resource: "ore"}
	bus.ackOK = []byte(`{"stream":"mainbus-ore","seq":`)
	msg := &nats.Msg{Data: []byte(`{"stream":"mainbus-ore","seq":123456,"duplicate": true}`)}
	b.ReportAllocs()
	for b.Loop() {
		if dup, err := bus.ackResult(msg); !dup || err != nil {
			b.Fatal(dup, err)
		}
	}
}
