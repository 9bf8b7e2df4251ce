// Rows of a file by index, with pread: a work job reads its classes' rows from the pool's .npy files
// without memory-mapping them (a map faults each page in, and its pages count in the process's RSS).
#pragma once
#include <cstdint>
#include <string>

namespace clipcov {

// Reads row rows[t] (rows ascending; each row_bytes long, the first at byte `offset`) into
// out + t * row_bytes; runs of consecutive rows take one read. Throws std::runtime_error naming the file.
void read_rows(const std::string& path, int64_t offset, int64_t row_bytes, const int64_t* rows, int64_t n,
               char* out);

}  // namespace clipcov
