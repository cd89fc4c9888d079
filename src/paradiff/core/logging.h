// Leveled logging to stderr, prefixed with the process's rank when running under MPI.
#pragma once

#include <string>

#include "paradiff/core/error.h"

namespace paradiff {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3, Quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
// Set once by the distributed runtime; -1 (the default) prints no rank prefix.
void set_log_rank(int rank);
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(Args&&... args) {
  if (log_level() <= LogLevel::Info) log_message(LogLevel::Info, str_cat(args...));
}
template <typename... Args>
void log_warning(Args&&... args) {
  if (log_level() <= LogLevel::Warning) log_message(LogLevel::Warning, str_cat(args...));
}
template <typename... Args>
void log_debug(Args&&... args) {
  if (log_level() <= LogLevel::Debug) log_message(LogLevel::Debug, str_cat(args...));
}

}  // namespace paradiff
