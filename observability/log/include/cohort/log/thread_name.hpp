// Names the calling thread (at most 15 characters show), so that `top -H`,
// `ps -L`, gdb and perf tell Cohort's threads apart: "cohort-io" is the
// ZeroMQ edge, "cohort-procs" supervises service processes, and so on.
#pragma once

#include <pthread.h>

#include <string>

namespace cohort::log {

inline void name_this_thread(const std::string& name) {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace cohort::log
