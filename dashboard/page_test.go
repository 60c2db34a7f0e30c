package dashboard_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/dashboard"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// absolute matches a URL in the page or its assets that does not stay
// under the mount point: from the root, or to another host.
var absolute = regexp.MustCompile(`(?:src|href)="/|https?://|url\(\s*["']?/|` +
	`(?:fetch|EventSource)\(\s*["']/`)

// TestPageUnderPrefix mounts the dashboard under a prefix and checks that
// the page and its assets come from there, by relative URLs only.
func TestPageUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	h := dashboard.MustHandler(mainbus.StatsOf(), dashboard.WithTitle(`Iron & <Copper>`))
	mux.Handle("/belts/", http.StripPrefix("/belts", h))
	srv := serve(t, mux)

	res, page := get(t, srv.URL+"/belts/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /belts/: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	if !strings.Contains(page, "Iron &amp; &lt;Copper&gt;") {
		t.Error("the page does not show the escaped title")
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q, want default-src 'self'", csp)
	}
	for _, id := range []string{`id="total-consumed"`, `id="status"`, `id="buses"`,
		`id="knobs"`, `src="static/app.js"`, `href="static/style.css"`} {
		if !strings.Contains(page, id) {
			t.Errorf("the page has no %s", id)
		}
	}
	assets := map[string]string{"static/app.js": "javascript", "static/style.css": "text/css"}
	for path, ct := range assets {
		res, body := get(t, srv.URL+"/belts/"+path)
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), ct) {
			t.Errorf("GET /belts/%s: %s %q", path, res.Status, res.Header.Get("Content-Type"))
		}
		if m := absolute.FindString(body); m != "" {
			t.Errorf("%s has an absolute URL at %q", path, m)
		}
	}
	if m := absolute.FindString(page); m != "" {
		t.Errorf("the page has an absolute URL at %q", m)
	}

	// The mount point without its slash leads to the page.
	res, _ = get(t, srv.URL+"/belts")
	if res.StatusCode != 200 || res.Request.URL.Path != "/belts/" {
		t.Errorf("GET /belts ended at %s with %s, want /belts/ and 200",
			res.Request.URL.Path, res.Status)
	}
	res, _ = get(t, srv.URL+"/belts/nothing")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /belts/nothing: %s, want 404", res.Status)
	}
}
