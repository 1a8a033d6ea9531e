#include "gateway/daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace mxgate {

void dropPrivileges(const std::string& user, const std::vector<std::string>& dirs) {
  if (geteuid() != 0 || user.empty()) return;
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr)
    throw std::runtime_error("server.user: no such user \"" + user +
                             "\" (create it with: useradd --system --no-create-home " + user +
                             ", or set user = \"\" to keep running as root)");
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (::chown(dir.c_str(), uid, gid) != 0)
      throw std::runtime_error("cannot hand " + dir + " to " + user + ": " + std::strerror(errno));
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (::lchown(it->path().c_str(), uid, gid) != 0)
        throw std::runtime_error("cannot hand " + it->path().string() + " to " + user + ": " +
                                 std::strerror(errno));
    }
  }
  if (initgroups(pw->pw_name, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
    throw std::runtime_error("cannot switch to user " + user + ": " + std::strerror(errno));
  if (setuid(0) == 0) throw std::runtime_error("privileges could be regained after dropping them");
}

}  // namespace mxgate
