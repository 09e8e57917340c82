/*-------------------------------------------------------------------------
 *
 * streamproc.c
 *	  Module entry point of streamproc, and its SQL-callable basics.
 *
 * streamproc must be loaded through shared_preload_libraries: it sizes
 * shared memory and will register background workers, which only the
 * postmaster can do at startup.  _PG_init records whether it ran in that
 * phase; when it did not (the library was loaded on demand by CREATE
 * EXTENSION or by calling one of its functions), every SQL-callable
 * function refuses to run with an error that says how to fix the
 * configuration.  The install script calls one of them first, so CREATE
 * EXTENSION fails the same way.
 *
 * During pg_upgrade's binary-upgrade mode nothing is set up: the server
 * only restores catalogs then, and workers must not touch them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "aggregates.h"
#include "launcher.h"
#include "stream.h"
#include "streamproc.h"
#include "view.h"

PG_MODULE_MAGIC;

/* True when _PG_init ran from shared_preload_libraries. */
bool streamproc_preloaded = false;

void _PG_init(void);

PG_FUNCTION_INFO_V1(streamproc_assert_preloaded);
PG_FUNCTION_INFO_V1(streamproc_info);

/*
 * _PG_init
 *		Module load callback.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	/* pg_upgrade restores catalogs only; stay out of its way. */
	if (IsBinaryUpgrade)
		return;

	streamproc_define_gucs();
	streamproc_shmem_init();
	streamproc_aggregates_init();
	streamproc_stream_init();
	streamproc_view_init();
	streamproc_register_launcher();
	streamproc_launcher_init();
	streamproc_preloaded = true;
}

/*
 * streamproc_check_preloaded
 *		Raise an error unless the library was loaded at server start.
 *
 * Every SQL-callable function calls this first.
 */
void
streamproc_check_preloaded(void)
{
	if (!streamproc_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamproc must be loaded via \"shared_preload_libraries\""),
				 errhint("Add streamproc to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

/*
 * streamproc_assert_preloaded
 *		SQL-callable form of the check; the install script calls it so that
 *		CREATE EXTENSION fails early when the library is not preloaded.
 */
Datum
streamproc_assert_preloaded(PG_FUNCTION_ARGS)
{
	streamproc_check_preloaded();
	PG_RETURN_VOID();
}

/*
 * streamproc_info
 *		One row describing the running library: its version, the
 *		librdkafka it is linked with, the shared control block's creation
 *		time (the server start that created it) and its worker slots.
 */
Datum
streamproc_info(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	Datum values[4];
	bool nulls[4] = {false, false, false, false};

	streamproc_check_preloaded();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = CStringGetTextDatum(STREAMPROC_VERSION);
	values[1] = CStringGetTextDatum(rd_kafka_version_str());
	values[2] = TimestampTzGetDatum(streamproc_shared->started_at);
	values[3] = Int32GetDatum(streamproc_shared->worker_slots);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
