#include "paradiff/server/api_error.h"

#include <nlohmann/json.hpp>

namespace paradiff::server {

ApiError::ApiError(int status, std::string type, std::string param, const std::string& message)
    : Error(message), status_(status), type_(std::move(type)), param_(std::move(param)) {}

std::string ApiError::json() const {
  nlohmann::json error = {{"message", what()}, {"type", type_}, {"param", nullptr}};
  if (!param_.empty()) error["param"] = param_;
  return nlohmann::json{{"error", error}}.dump();
}

ApiError bad_request(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", param, message);
}

ApiError over_limit(const std::string& param, const std::string& message) {
  return ApiError(413, "limit_exceeded", param, message);
}

}  // namespace paradiff::server
