// Errors in configuration and rule files. Every message a reader raises names
// the file and line, so an admin can go straight to the mistake.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mxgate {

// what() is "file:line: message", or "file: message" when no line applies
// (line 0: the file as a whole, e.g. it cannot be read).
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, uint32_t line, const std::string& message)
      : std::runtime_error(file + (line ? ":" + std::to_string(line) : std::string()) + ": " +
                           message),
        file_(std::move(file)),
        line_(line),
        message_(message) {}

  const std::string& file() const { return file_; }
  uint32_t line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  uint32_t line_;
  std::string message_;
};

}  // namespace mxgate
