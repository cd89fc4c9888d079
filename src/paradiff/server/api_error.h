// An answer other than success, in the OpenAI API's shape: an HTTP status and
// {"error": {"message", "type", "param"}}. Thrown by the request checks and the queue; the
// routes turn it into the response.
#pragma once

#include <string>

#include "paradiff/core/error.h"

namespace paradiff::server {

class ApiError : public Error {
 public:
  // param: the request field at fault (empty: none, written as null).
  ApiError(int status, std::string type, std::string param, const std::string& message);

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  // {"error":{"message":..,"type":..,"param":..}}
  std::string json() const;

 private:
  int status_;
  std::string type_, param_;
};

// The common kinds: 400 (the request is wrong), 413 (beyond a limit of this server), 429 (the
// queue is full), 503 (shutting down), 500 (the engine failed).
ApiError bad_request(const std::string& param, const std::string& message);
ApiError over_limit(const std::string& param, const std::string& message);

}  // namespace paradiff::server
