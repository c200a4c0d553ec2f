// Package dtmdtest starts a real dtmd and real gRPC branch servers on
// loopback for tests. The dtmd binary is $DTMD_BIN (make test-go sets it);
// tests that need it are skipped when it is unset.
package dtmdtest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// StartDtmd starts dtmd on a port the OS picks, with a fresh data directory
// and 1-second retry and cron intervals, and stops it with SIGTERM when the
// test ends. Returns its "127.0.0.1:port".
func StartDtmd(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("DTMD_BIN")
	if bin == "" {
		t.Skip("DTMD_BIN is not set: no dtmd to test against (make test-go sets it)")
	}
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	cmd := exec.Command(bin, "--listen_address=127.0.0.1", "--grpc_port=0", "--port_file="+portFile,
		"--data_dir="+filepath.Join(dir, "data"), "--retry_interval=1", "--cron_interval=1",
		"--max_retry_interval=2", "--metrics_port=0", "--http_port=0")
	logFile, err := os.Create(filepath.Join(dir, "dtmd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("dtmd log:\n%s", log)
			}
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if port, err := os.ReadFile(portFile); err == nil && len(strings.TrimSpace(string(port))) > 0 {
			return "127.0.0.1:" + strings.TrimSpace(string(port))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("dtmd wrote no port to %s", portFile)
	return ""
}

// Serve starts server on a loopback port the OS picks and stops it when the
// test ends. Returns its "127.0.0.1:port".
func Serve(t testing.TB, server *grpc.Server) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(listener) //nolint:errcheck
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

// Eventually polls cond every 50 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
