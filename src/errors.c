/*-------------------------------------------------------------------------
 *
 * errors.c
 *	  Classification of the errors caught while processing events.
 *
 * The ingest workers run each batch of events through a view's query in a
 * subtransaction and catch what it raises.  Only an error that is the
 * fault of one event may send that event to streamproc.errors (a dead
 * letter): anything else would lose good events under an exactly-once
 * promise.  The SQLSTATE class decides, as plpgsql's exception blocks
 * refuse to trap query cancels:
 *
 *	- transient: 40 (serialization failure, deadlock), 53 (out of memory,
 *	  disk full, too many connections), 54 (program limits), 55 (lock not
 *	  available, object in use), 57 (cancel, shutdown), 58 (system errors:
 *	  I/O), XX (internal errors), 08 (connections, for views that reach
 *	  other servers) and HV (foreign data wrappers).  The batch is aborted
 *	  and retried later; no event is blamed.
 *	- the view's fault: 42 (undefined objects, privileges), 0A (features not
 *	  supported), 2B, 3D, 3F (dependent or missing objects), 0L, 0P, 28
 *	  (roles), 25, 26, 34 (transaction and cursor state), 38, 39 (external
 *	  routines), F0 (configuration).  No event is blamed either: the view is
 *	  retried until the cause is gone.
 *	- everything else is the event's data: 22 (data exceptions), 23
 *	  (integrity constraints), 21, 2F, 27, 20, P0 (RAISE in a function) and
 *	  any class a view's own function chooses.
 *
 * An error above ERROR (FATAL, PANIC) is never caught in the first place.
 * The engine's own per-event limits raise class 22 codes, so that an event
 * that hits one is recorded, not retried forever.
 *
 * streamproc_run_xact() is the workers' one way to run a piece of work in
 * a transaction of its own and get its error back instead of losing the
 * process to it (feeds, change logs, sinks).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/elog.h"
#include "utils/snapmgr.h"

#include "errors.h"

/* An SQLSTATE class, as ERRCODE_TO_CATEGORY() gives it. */
#define CLASS(c1, c2) MAKE_SQLSTATE(c1, c2, '0', '0', '0')

static const int transient_classes[] = {
	CLASS('4', '0'),
	CLASS('5', '3'),
	CLASS('5', '4'),
	CLASS('5', '5'),
	CLASS('5', '7'),
	CLASS('5', '8'),
	CLASS('X', 'X'),
	CLASS('0', '8'),
	CLASS('H', 'V'),
};

static const int view_classes[] = {
	CLASS('4', '2'),
	CLASS('0', 'A'),
	CLASS('2', 'B'),
	CLASS('3', 'D'),
	CLASS('3', 'F'),
	CLASS('0', 'L'),
	CLASS('0', 'P'),
	CLASS('2', '8'),
	CLASS('2', '5'),
	CLASS('2', '6'),
	CLASS('3', '4'),
	CLASS('3', '8'),
	CLASS('3', '9'),
	CLASS('F', '0'),
};

static bool
class_in(int category, const int *classes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (classes[i] == category)
			return true;
	return false;
}

/*
 * streamproc_error_kind
 *		What a caught error says about the events that raised it.
 */
StreamprocErrorKind
streamproc_error_kind(const ErrorData *edata)
{
	int category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	if (edata->elevel > ERROR ||
		class_in(category, transient_classes, lengthof(transient_classes)))
		return STREAMPROC_ERROR_TRANSIENT;
	if (class_in(category, view_classes, lengthof(view_classes)))
		return STREAMPROC_ERROR_VIEW;
	return STREAMPROC_ERROR_DATA;
}

const char *
streamproc_error_kind_name(StreamprocErrorKind kind)
{
	switch (kind)
	{
		case STREAMPROC_ERROR_DATA:
			return "data";
		case STREAMPROC_ERROR_TRANSIENT:
			return "transient";
		case STREAMPROC_ERROR_VIEW:
			return "view";
	}
	return "unknown";
}

/*
 * streamproc_run_xact
 *		See errors.h.
 */
ErrorData *
streamproc_run_xact(void (*fn)(void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData *volatile edata = NULL;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->elevel > ERROR)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return edata;
}
