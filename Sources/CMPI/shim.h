// Open MPI's predefined handles are macros over incomplete global structs, which Swift cannot import;
// these constants give them names Swift can see, one line per type.
#include <mpi.h>

static MPI_Comm const CMPI_COMM_WORLD = MPI_COMM_WORLD, CMPI_COMM_NULL = MPI_COMM_NULL;
static MPI_Datatype const CMPI_FLOAT = MPI_FLOAT, CMPI_DOUBLE = MPI_DOUBLE, CMPI_INT64 = MPI_INT64_T, CMPI_BYTE = MPI_BYTE;
static MPI_Op const CMPI_SUM = MPI_SUM, CMPI_MIN = MPI_MIN, CMPI_MAX = MPI_MAX;
static void * const CMPI_IN_PLACE = MPI_IN_PLACE;
static MPI_Errhandler const CMPI_ERRORS_RETURN = MPI_ERRORS_RETURN;
static MPI_Info const CMPI_INFO_NULL = MPI_INFO_NULL;
static MPI_Win const CMPI_WIN_NULL = MPI_WIN_NULL;
static int const CMPI_SUCCESS = MPI_SUCCESS, CMPI_MAX_ERROR_STRING = MPI_MAX_ERROR_STRING,
                 CMPI_COMM_TYPE_SHARED = MPI_COMM_TYPE_SHARED, CMPI_MODE_NOCHECK = MPI_MODE_NOCHECK;
