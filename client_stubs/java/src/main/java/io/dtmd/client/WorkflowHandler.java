package io.dtmd.client;

/**
 * A workflow's body: runs its steps through {@link Workflow#step} and returns the workflow's
 * result. A throw of ABORTED (see {@link WorkflowClient#failure}) makes the workflow fail with
 * its description as rollback reason; any other throw leaves it unfinished, to be resumed.
 */
@FunctionalInterface
public interface WorkflowHandler {
  byte[] run(Workflow wf, byte[] input) throws Exception;
}
