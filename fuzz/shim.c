/*-------------------------------------------------------------------------
 *
 * shim.c
 *	  The backend functions that pure-C files of src/ may call, for the
 *	  standalone fuzz targets.
 *
 * Also fuzz_fail (fuzz.h), for every target.
 *
 * A pure-C file (see src/msgscan.c, "Pure C files") is compiled with the
 * server's headers but linked, in a fuzz target, with libpgcommon and
 * libpgport only: StringInfo, the encoding functions, snprintf and palloc
 * (fe_memutils: plain malloc, exit on out of memory) come from there.
 * What is left of the backend is here, and should stay this small: a
 * pure-C file that needs more (ereport, a catalog, a GUC) is not pure any
 * more, and `make fuzz` fails to link it, on purpose.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "miscadmin.h"

#include "fuzz.h"

/*
 * The harnesses' inputs are small (libFuzzer's -max_len), and the scanners
 * bound their own nesting, so there is no stack to check.
 */
void
check_stack_depth(void)
{
}

/*
 * Assert() when the target is built with USE_ASSERT_CHECKING (fuzz/Makefile
 * does): a failed assertion is a finding, so abort for libFuzzer to
 * report it with the input.
 */
void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	fprintf(stderr, "TRAP: %s(\"%s\", File: \"%s\", Line: %d)\n",
			errorType ? errorType : "?", conditionName ? conditionName : "?",
			fileName ? fileName : "?", lineNumber);
	abort();
}

void
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}
