// demo: the shop embedded in one process with a sample workload (`cohort demo`).
#pragma once

namespace cohort {
/// Runs the shop in this process, drives checkouts through it, prints the
/// audit. Returns the program's exit code.
int run_demo();
}  // namespace cohort
