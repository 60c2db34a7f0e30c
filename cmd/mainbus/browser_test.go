package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the path of a Chromium or Chrome binary. Without
// one the test is skipped, unless MAINBUS_REQUIRE_BROWSER=1 (as in CI),
// where it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome",
		"google-chrome-stable", "headless-shell"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const msg = "no Chromium found on the path (chromium, chromium-browser, google-chrome); " +
		"install it with apt-get install chromium"
	if os.Getenv("MAINBUS_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; MAINBUS_REQUIRE_BROWSER=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// TestDashboardInBrowser opens the page of the real command in headless
// Chromium: the belts render, the consumed total grows, the stream is
// live, and a knob resizes a bus. It saves a screenshot to the path in
// MAINBUS_SCREENSHOT, or to a temporary directory.
func TestDashboardInBrowser(t *testing.T) {
	chromium := findChromium(t)
	// Copper gets more than its two conveyors can take, so the picture
	// shows backpressure next to a healthy bus.
	p := startDashboard(t, "--bus", "iron=4", "--bus", "copper=2", "--bus", "coal=6",
		"--rate", "1500", "--interval", "100ms")

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	const (
		consumed  = `Number(document.getElementById("total-consumed").dataset.value)`
		liveBelts = `document.querySelectorAll('.belt-row[data-active="true"]').length`
	)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// poll waits, with a deadline, for a JavaScript expression to be true.
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))
	}

	do("open the page",
		chromedp.EmulateViewport(1440, 900),
		chromedp.Navigate(p.url),
		chromedp.WaitVisible(chromedp.CSS(`.belt-row[data-bus="copper"]`)))
	do("wait for the belts: 4 iron, 2 copper, 6 coal", poll(liveBelts+` === 12`))
	before, err := chromedp.Run(browser, chromedp.Evaluate[float64](consumed))
	if err != nil {
		t.Fatalf("read the consumed total: %v", err)
	}
	do("wait for the consumed total to grow", poll(fmt.Sprintf("%s > %v", consumed, before)))
	do("see the stream live",
		poll(`document.getElementById("status").dataset.state === "live"`))

	// Moving a slider resizes the bus: iron goes from 4 to 8 belts.
	do("move the iron conveyors knob", chromedp.Evaluate[chromedp.Void](`(() => {
		const k = document.querySelector('input[data-knob="iron conveyors"]');
		k.value = "8";
		k.dispatchEvent(new Event("input", {bubbles: true}));
		k.dispatchEvent(new Event("change", {bubbles: true}));
	})()`))
	do("see iron on 8 belts",
		poll(`document.querySelectorAll('.belt-row[data-bus="iron"][data-active="true"]')`+
			`.length === 8`))
	// Copper's producer asks for more than its belts carry: backpressure.
	do("turn the copper rate knob up", chromedp.Evaluate[chromedp.Void](`(() => {
		const k = document.querySelector('input[data-knob="copper rate"]');
		k.value = "4000";
		k.dispatchEvent(new Event("change", {bubbles: true}));
	})()`))
	do("see copper under backpressure",
		poll(`document.querySelector('.belt-row[data-bus="copper"][data-state="blocked"]')`+
			` !== null`))
	// A few seconds of history make the charts worth a picture.
	do("fill the charts",
		poll(`Number(document.querySelector('[data-chart="iron"]').dataset.points) >= 40`))

	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("take a screenshot: %v", err)
	}
	path := os.Getenv("MAINBUS_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "dashboard.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))

	cancelBrowser()
	if code := p.interrupt(t); code != exitOK {
		t.Errorf("exit %d after an interrupt, want 0; stderr:\n%s", code, p.stderr.String())
	}
}
