// System zlib: gzopen/gzread stream both gzipped and raw files.
#include <zlib.h>
