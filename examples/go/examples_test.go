// Runs each example as its README command does (go run ./NAME -dtm ADDR)
// against a dtmd started for the test, and checks what it printed.
package examples_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dtmd/dtmd/client_stubs/go/dtmdtest"
)

func runExample(t *testing.T, name string) string {
	t.Helper()
	addr := dtmdtest.StartDtmd(t)
	out, err := exec.Command("go", "run", "./"+name, "-dtm", addr).CombinedOutput()
	t.Logf("go run ./%s -dtm %s:\n%s", name, addr, out)
	if err != nil {
		t.Fatalf("go run ./%s: %v", name, err)
	}
	return string(out)
}

func expect(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, want := range lines {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestSagaExampleChargesOneOrderAndRollsBackTheRefusedOne(t *testing.T) {
	out := runExample(t, "saga")
	expect(t, out, "saga succeeded", "order created, stock left 8 (held 2), balance 70.00 (charged 30.00)",
		"saga failed", "payment refused: bob has 10.00, the order costs 50.00",
		"order cancelled, stock left 8 (held 0), balance 10.00 (charged 0.00)", "saga example: done")
}

func TestTccExampleConfirmsOneOrderAndCancelsTheRefusedOne(t *testing.T) {
	out := runExample(t, "tcc")
	expect(t, out, "tcc confirmed", "stock left 8 (held 2), alice's balance 70.00 (charged 30.00)",
		"tcc cancelled", "payment refused", "stock left 8 (held 0), bob's balance 10.00 (charged 0.00)",
		"tcc example: done")
}

func TestMsgExampleDeliversTheNotification(t *testing.T) {
	out := runExample(t, "msg")
	expect(t, out, "created by the local transaction", "msg submitted", "notification delivered", "msg example: done")
}
