package dtmclient_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
)

func TestSagaRequestCarriesStepsPayloadsOrdersAndOptions(t *testing.T) {
	saga := (&dtmclient.Client{}).NewSaga("g1").
		AddRaw("h:1/p.S/A", "h:1/p.S/C", []byte("x")).
		AddRaw("h:1/p.S/B", "", nil).
		EnableConcurrent().
		AddBranchOrder(1, 0)
	saga.RetryLimit = 3
	saga.BranchHeaders = map[string]string{"k": "v"}
	request, err := saga.BuildRequest()
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"action":"h:1/p.S/A","compensate":"h:1/p.S/C"},{"action":"h:1/p.S/B","compensate":""}]`; request.Steps != want {
		t.Errorf("Steps %s, want %s", request.Steps, want)
	}
	if want := `{"concurrent":true,"orders":{"1":[0]}}`; request.CustomedData != want {
		t.Errorf("CustomedData %s, want %s", request.CustomedData, want)
	}
	if request.TransType != "saga" || len(request.BinPayloads) != 2 || string(request.BinPayloads[0]) != "x" ||
		request.TransOptions.RetryLimit != 3 || request.TransOptions.BranchHeaders["k"] != "v" {
		t.Errorf("request %v", request)
	}
}

func TestPlainSagaHasNoCustomedData(t *testing.T) {
	request, _ := (&dtmclient.Client{}).NewSaga("g").AddRaw("a/b", "", nil).BuildRequest()
	if request.CustomedData != "" {
		t.Errorf("CustomedData %q, want empty", request.CustomedData)
	}
}

func TestMsgRequestCarriesTopicAndDelay(t *testing.T) {
	request, err := (&dtmclient.Client{}).NewMsg("g").AddRaw("h:1/p.S/A", []byte("1")).
		AddTopic("orders", str("2")).SetDelay(5).BuildRequest()
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"action":"h:1/p.S/A"},{"action":"topic://orders"}]`; request.Steps != want {
		t.Errorf("Steps %s, want %s", request.Steps, want)
	}
	if request.CustomedData != `{"delay":5}` || request.TransType != "msg" {
		t.Errorf("request %v", request)
	}
}

func TestSplitBranchURL(t *testing.T) {
	host, method, err := dtmclient.SplitBranchURL("127.0.0.1:9/pkg.Svc/M")
	if err != nil || host != "127.0.0.1:9" || method != "/pkg.Svc/M" {
		t.Errorf("got %q %q %v", host, method, err)
	}
	for _, bad := range []string{"", "/pkg.Svc/M", "host:1", "host:1/"} {
		if _, _, err := dtmclient.SplitBranchURL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestBranchInfoFromContextReadsTheDtmMetadata(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		"dtm-gid", "g", "dtm-trans_type", "saga", "dtm-branch_id", "01", "dtm-op", "action", "dtm-dtm", "d:1"))
	info, err := dtmclient.BranchInfoFromContext(ctx)
	if err != nil || info != (dtmclient.BranchInfo{Gid: "g", TransType: "saga", BranchID: "01", Op: "action", Dtm: "d:1"}) {
		t.Errorf("got %+v, %v", info, err)
	}
	if _, err := dtmclient.BranchInfoFromContext(context.Background()); err == nil {
		t.Error("no metadata: no error")
	}
}
