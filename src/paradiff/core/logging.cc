#include "paradiff/core/logging.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace paradiff {

namespace {
std::atomic<LogLevel> g_level{LogLevel::Info};
std::atomic<int> g_rank{-1};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) {
  g_level = level;
}
LogLevel log_level() {
  return g_level;
}
void set_log_rank(int rank) {
  g_rank = rank;
}

void log_message(LogLevel level, const std::string& message) {
  if (level < g_level.load()) return;
  static const char* names[] = {"debug", "info", "warning", "error", ""};
  std::lock_guard<std::mutex> lock(g_mutex);
  const int rank = g_rank.load();
  if (rank >= 0) {
    std::fprintf(stderr, "[rank %d] %s: %s\n", rank, names[static_cast<int>(level)],
                 message.c_str());
  } else {
    std::fprintf(stderr, "%s: %s\n", names[static_cast<int>(level)], message.c_str());
  }
  std::fflush(stderr);
}

}  // namespace paradiff
