#include "cpu/read_rows.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace clipcov {

namespace {
struct File {
  int fd;
  explicit File(const std::string& path) : fd(::open(path.c_str(), O_RDONLY)) {}
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

void read_rows(const std::string& path, int64_t offset, int64_t row_bytes, const int64_t* rows, int64_t n,
               char* out) {
  File f(path);
  if (f.fd < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  for (int64_t t = 0; t < n;) {
    int64_t e = t + 1;  // rows[t..e) are consecutive
    while (e < n && rows[e] == rows[e - 1] + 1) ++e;
    char* dst = out + t * row_bytes;
    int64_t want = (e - t) * row_bytes, at = offset + rows[t] * row_bytes;
    while (want > 0) {
      const ssize_t got = ::pread(f.fd, dst, size_t(want), off_t(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw std::runtime_error(path + ": cannot read row " + std::to_string(rows[t]) +
                                 (got == 0 ? " (the file is shorter than its header says)"
                                           : std::string(" (") + std::strerror(errno) + ")"));
      dst += got;
      at += got;
      want -= got;
    }
    t = e;
  }
}

}  // namespace clipcov
