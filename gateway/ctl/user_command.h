// `mxgatectl user ...`: edits the submission users file (SMTP AUTH).
#pragma once

#include <string>
#include <vector>

namespace mxgate {

// args: what follows "user". Returns the exit status (0 ok, 1 error, 2 usage).
int userCommand(const std::string& config_file, const std::vector<std::string>& args);

}  // namespace mxgate
