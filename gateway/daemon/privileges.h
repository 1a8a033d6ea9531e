// Dropping root after binding ports.
#pragma once

#include <string>
#include <vector>

namespace mxgate {

// When running as root and user is not empty: hands the given directories
// (recursively) to the user, then switches to its uid and gids for good.
// Not root: does nothing. Throws std::runtime_error with a clear reason.
void dropPrivileges(const std::string& user, const std::vector<std::string>& dirs);

}  // namespace mxgate
