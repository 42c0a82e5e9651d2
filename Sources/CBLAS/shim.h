// OpenBLAS's CBLAS interface (cblas_sgemm) and its thread controls.
#include <cblas.h>
