package io.dtmd.client;

import static org.junit.jupiter.api.Assertions.fail;

import io.dtmd.admin.v1.AdminGrpc;
import io.dtmd.admin.v1.GetTransactionReply;
import io.dtmd.admin.v1.GetTransactionRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * One real dtmd for the whole test JVM, started on a port the OS picks (the binary's path is the
 * system property dtmd.binary; tests that need it are skipped without it) and stopped with
 * SIGTERM when the JVM exits.
 */
final class TestDtmd {
  private static TestDtmd instance;

  final String address;
  final DtmClient client;
  private final ManagedChannel adminChannel;
  private final AdminGrpc.AdminBlockingStub admin;

  private TestDtmd(String address) {
    this.address = address;
    this.client = new DtmClient(address);
    this.adminChannel = ManagedChannelBuilder.forTarget(address).usePlaintext().build();
    this.admin = AdminGrpc.newBlockingStub(adminChannel);
  }

  static synchronized TestDtmd get() throws Exception {
    if (instance != null) {
      return instance;
    }
    String binary = System.getProperty("dtmd.binary", "");
    Assumptions.assumeTrue(!binary.isEmpty(), "set -Ddtmd.binary to run against a real dtmd");
    Path dir = Files.createTempDirectory("dtmd-java-test");
    Path portFile = dir.resolve("port");
    Process process =
        new ProcessBuilder(
                binary,
                "--listen_address=127.0.0.1",
                "--grpc_port=0",
                "--port_file=" + portFile,
                "--data_dir=" + dir.resolve("data"),
                "--retry_interval=1",
                "--cron_interval=1",
                "--max_retry_interval=2",
                "--metrics_port=0",
                "--http_port=0")
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("dtmd.log").toFile())
            .start();
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  process.destroy(); // SIGTERM
                  try {
                    process.waitFor(10, TimeUnit.SECONDS);
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                }));
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    String port = "";
    while (port.isEmpty()) {
      if (!process.isAlive()) {
        fail("dtmd exited: " + Files.readString(dir.resolve("dtmd.log")));
      }
      if (System.nanoTime() > deadline) {
        fail("dtmd wrote no port file");
      }
      port = readPort(portFile);
      if (port.isEmpty()) {
        Thread.sleep(50);
      }
    }
    instance = new TestDtmd("127.0.0.1:" + port);
    return instance;
  }

  private static String readPort(Path portFile) throws IOException {
    if (!Files.exists(portFile)) {
      return "";
    }
    String text = Files.readString(portFile).trim();
    return text.matches("\\d+") ? text : "";
  }

  GetTransactionReply transaction(String gid) {
    return admin
        .withDeadlineAfter(5, TimeUnit.SECONDS)
        .getTransaction(GetTransactionRequest.newBuilder().setGid(gid).build());
  }

  /** Waits (up to 30 s) until the transaction's status is {@code status}. */
  void awaitStatus(String gid, String status) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    String last = "";
    while (System.nanoTime() < deadline) {
      try {
        last = transaction(gid).getTransaction().getStatus();
      } catch (StatusRuntimeException e) {
        last = e.getStatus().toString();
      }
      if (last.equals(status)) {
        return;
      }
      Thread.sleep(50);
    }
    fail("transaction " + gid + " is " + last + ", not " + status);
  }
}
