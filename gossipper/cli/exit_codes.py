"""Process exit codes, identical to SIPp's so lab scripts keep their checks."""

EXIT_ALL_CALLS_OK = 0
EXIT_CALLS_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255
EXIT_BIND_FAILED = 254
EXIT_RTP_CHECK_FAILED = 253
