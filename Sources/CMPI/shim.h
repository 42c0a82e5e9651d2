// Open MPI's predefined handles are macros over incomplete global structs, which Swift cannot import;
// these constants give them names Swift can see.
#include <mpi.h>

static MPI_Comm     const CMPI_COMM_WORLD = MPI_COMM_WORLD;
static MPI_Datatype const CMPI_FLOAT      = MPI_FLOAT;
static MPI_Datatype const CMPI_DOUBLE     = MPI_DOUBLE;
static MPI_Datatype const CMPI_INT64      = MPI_INT64_T;
static MPI_Datatype const CMPI_BYTE       = MPI_BYTE;
static MPI_Op       const CMPI_SUM        = MPI_SUM;
static MPI_Op       const CMPI_MIN        = MPI_MIN;
static MPI_Op       const CMPI_MAX        = MPI_MAX;
static void *       const CMPI_IN_PLACE   = MPI_IN_PLACE;
static MPI_Errhandler const CMPI_ERRORS_RETURN = MPI_ERRORS_RETURN;
static int          const CMPI_SUCCESS    = MPI_SUCCESS;
static int          const CMPI_MAX_ERROR_STRING = MPI_MAX_ERROR_STRING;
static MPI_Info     const CMPI_INFO_NULL  = MPI_INFO_NULL;
static int          const CMPI_COMM_TYPE_SHARED = MPI_COMM_TYPE_SHARED;
static int          const CMPI_MODE_NOCHECK = MPI_MODE_NOCHECK;
static MPI_Win      const CMPI_WIN_NULL   = MPI_WIN_NULL;
static MPI_Comm     const CMPI_COMM_NULL  = MPI_COMM_NULL;
