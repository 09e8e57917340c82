/*-------------------------------------------------------------------------
 *
 * errors.h
 *	  Which errors are an event's fault (see errors.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_ERRORS_H
#define STREAMPROC_ERRORS_H

#include "postgres.h"

/* What an error caught while processing events says about them. */
typedef enum StreamprocErrorKind
{
	/* The event's own data: record it in streamproc.errors, go on. */
	STREAMPROC_ERROR_DATA,

	/*
	 * A fault of the system that passes (resources, locks, cancels,
	 * serialization, internal errors): the batch is retried, nothing is
	 * dead-lettered.
	 */
	STREAMPROC_ERROR_TRANSIENT,

	/*
	 * The view's definition no longer works (a privilege revoked, an object
	 * it needs changed): no event is at fault; the view is retried until the
	 * cause is gone.
	 */
	STREAMPROC_ERROR_VIEW
} StreamprocErrorKind;

extern StreamprocErrorKind streamproc_error_kind(const ErrorData *edata);
extern const char *streamproc_error_kind_name(StreamprocErrorKind kind);

/*
 * Run fn(arg) in a transaction of its own, with a snapshot; call it outside
 * any transaction.  Returns NULL once the transaction committed; after an
 * ERROR, aborts the transaction and returns the error, copied into the
 * caller's memory context (FreeErrorData() it).  Anything above ERROR is
 * re-thrown.
 */
extern ErrorData *streamproc_run_xact(void (*fn)(void *arg), void *arg);

#endif /* STREAMPROC_ERRORS_H */
