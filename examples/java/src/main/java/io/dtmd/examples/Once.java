package io.dtmd.examples;

import io.dtmd.client.BranchInfo;
import java.util.HashSet;
import java.util.Set;

/**
 * The in-memory stand-in for the sub-transaction barrier that each example service uses, so that
 * repeated and reordered calls from the coordinator are harmless: an action runs once, a
 * compensation runs once and only if its action ran, an action arriving after its compensation
 * does nothing. A service with a database uses io.dtmd.client.BranchBarrier instead.
 * Thread-safe.
 */
final class Once {
  private final Set<String> seen = new HashSet<>();

  /**
   * Runs {@code work} unless the barrier rules say this call must do nothing; returns whether it
   * ran.
   */
  synchronized boolean run(BranchInfo info, Runnable work) {
    String branch = info.gid() + "/" + info.branchId() + "/";
    boolean compensation = info.op().equals("compensate");
    if (compensation) {
      boolean actionRan = seen.contains(branch + "action");
      boolean firstCompensation = seen.add(branch + "compensate");
      seen.add(branch + "action"); // an action arriving later is a no-op
      if (actionRan && firstCompensation) {
        work.run();
        return true;
      }
      return false;
    }
    if (seen.add(branch + "action")) {
      work.run();
      return true;
    }
    return false;
  }
}
