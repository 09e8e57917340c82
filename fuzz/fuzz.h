/*-------------------------------------------------------------------------
 *
 * fuzz.h
 *	  What every fuzz target can use (defined in fuzz/shim.c, which every
 *	  target links).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_FUZZ_H
#define STREAMPROC_FUZZ_H

/*
 * Report a violated property and abort, for libFuzzer to keep the input
 * that caused it.
 */
extern void fuzz_fail(const char *fmt, ...) pg_attribute_printf(1, 2)
	pg_attribute_noreturn();

#endif /* STREAMPROC_FUZZ_H */
