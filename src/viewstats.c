/*-------------------------------------------------------------------------
 *
 * viewstats.c
 *	  streamproc._view_stats(): what the registry of view states says about
 *	  each view of the database, for streamproc.stat_views.
 *
 * The figures are copied under the registry lock (state.c); the view
 * joins them with the catalog.  On a standby nothing is registered (no
 * ingest worker runs there), and stat_views says "standby".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "state.h"
#include "streamproc.h"

PG_FUNCTION_INFO_V1(streamproc_view_stats);

static const char *
status_name(ViewSlotStatus status)
{
	switch (status)
	{
		case VIEW_SLOT_IDLE:
		case VIEW_SLOT_RUNNING:
			return "running";
		case VIEW_SLOT_RETRYING:
			return "retrying";
		case VIEW_SLOT_FAILED:
			return "failed";
		case VIEW_SLOT_PAUSED:
			return "paused";
	}
	return "running";
}

/*
 * streamproc._view_stats() RETURNS SETOF record
 *		One row per view with state in shared memory.
 */
Datum
streamproc_view_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	List *views;
	ListCell *lc;

	streamproc_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	views = streamproc_state_views_of(MyDatabaseId);
	foreach (lc, views)
	{
		ViewStateInfo info;
		Datum values[11];
		bool nulls[11];

		if (!streamproc_state_info(MyDatabaseId, lfirst_oid(lc), &info))
			continue;
		memset(nulls, false, sizeof(nulls));
		values[0] = ObjectIdGetDatum(lfirst_oid(lc));
		values[1] = Int64GetDatum(info.events);
		values[2] = Int64GetDatum(info.groups);
		values[3] = Int64GetDatum(info.memory);
		values[4] = BoolGetDatum(info.ready);
		if (info.last_checkpoint != 0)
		{
			values[5] = TimestampTzGetDatum(info.last_checkpoint);
			values[6] = Float8GetDatum(info.last_checkpoint_ms);
		}
		else
			nulls[5] = nulls[6] = true;
		values[7] = TimestampTzGetDatum(info.watermark);
		nulls[7] = TIMESTAMP_NOT_FINITE(info.watermark);
		values[8] = Int64GetDatum(info.late_events);
		values[9] = CStringGetTextDatum(status_name(info.status));
		values[10] = CStringGetTextDatum(info.last_error);
		nulls[10] = info.last_error[0] == '\0';
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}
