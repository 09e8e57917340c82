/*-------------------------------------------------------------------------
 *
 * reader.c
 *	  Reading continuous views: streamproc.read_view() and statistics.
 *
 * A continuous view's definition (view.c) selects from
 * streamproc.read_view(view oid), which returns one row per group: the
 * group key columns, then the final value of each aggregate; the view
 * applies the user's expressions and HAVING on top.  read_view combines
 * the partial states of every slot (ingest worker) of a group and applies
 * the final functions, so readers see everything merged so far.  Partial
 * states never leave C code here: deserialization functions trust their
 * input, so no SQL caller may pass them a state.
 *
 * While the view's state is not in shared memory (its worker has not
 * loaded it yet, for example right after a restart), read_view reads the
 * last checkpoint from streamproc.view_state instead.
 *
 * Privileges: read_view checks that the current user may SELECT from the
 * view, so nobody reads a view's state without the privilege on the view.
 *
 * Locking: read_view holds the state registry lock in shared mode while it
 * scans the view's groups (so the group table cannot be destroyed under
 * it), and dshash takes shared partition locks; see state.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "aggregates.h"
#include "launcher.h"
#include "state.h"
#include "streamproc.h"
#include "windows.h"
#include "worker.h"

/* What read_view needs to know about a view. */
typedef struct ReadContext
{
	int ngroup;
	FmgrInfo *group_recv;
	Oid *group_ioparam;
	int nagg;
	StreamprocAggInfo **aggs;
	Tuplestorestate *store;
	TupleDesc desc;
	int64 emitted;

	/* Windowed views */
	WindowSpec window;  /* kind 0: not windowed */
	int16 *roles;       /* WINDOW_ROLE_* of each group column */
	int nkeys;          /* ordinary group columns: */
	FmgrInfo *key_recv; /* ... their receive functions */
	Oid *key_ioparam;
	TimestampTz *bounds;     /* per slot: its windows ending at or before are closed */
	TimestampTz final_bound; /* emit final: windows every writer closed */
} ReadContext;

PG_FUNCTION_INFO_V1(streamproc_read_view);
PG_FUNCTION_INFO_V1(streamproc_view_stats);

/* Decode a serialized group key (see worker.c) into values and nulls. */
static void
decode_key(ReadContext *rc, const char *key, uint32 keylen, Datum *values,
		   bool *nulls)
{
	uint32 pos = 0;
	int i;

	for (i = 0; i < rc->ngroup; i++)
	{
		StringInfoData buf;
		int32 len;

		if (pos >= keylen)
			elog(ERROR, "corrupt streamproc group key");
		if (key[pos++] == 0)
		{
			values[i] = (Datum)0;
			nulls[i] = true;
			continue;
		}
		if (pos + sizeof(int32) > keylen)
			elog(ERROR, "corrupt streamproc group key");
		memcpy(&len, key + pos, sizeof(int32));
		pos += sizeof(int32);
		if (len < 0 || pos + len > keylen)
			elog(ERROR, "corrupt streamproc group key");

		/* ReceiveFunctionCall wants a terminated, private buffer. */
		initStringInfo(&buf);
		appendBinaryStringInfo(&buf, key + pos, len);
		pos += len;
		values[i] = ReceiveFunctionCall(&rc->group_recv[i], &buf,
										rc->group_ioparam[i], -1);
		nulls[i] = false;
	}
}

/* Decode a windowed view's key: window start and end, then the others. */
static void
decode_window_key(ReadContext *rc, const char *key, uint32 keylen, Datum *values,
				  bool *nulls)
{
	ReadContext keys = *rc;
	Datum *kvalues = palloc0(sizeof(Datum) * Max(rc->nkeys, 1));
	bool *knulls = palloc0(sizeof(bool) * Max(rc->nkeys, 1));
	TimestampTz start;
	TimestampTz end;
	int k = 0;
	int i;

	streamproc_window_key_decode(key, keylen, &start, &end);
	keys.ngroup = rc->nkeys;
	keys.group_recv = rc->key_recv;
	keys.group_ioparam = rc->key_ioparam;
	decode_key(&keys, key + WINDOW_KEY_PREFIX, keylen - WINDOW_KEY_PREFIX, kvalues, knulls);
	for (i = 0; i < rc->ngroup; i++)
	{
		nulls[i] = false;
		if (rc->roles[i] == WINDOW_ROLE_START)
			values[i] = TimestampTzGetDatum(start);
		else if (rc->roles[i] == WINDOW_ROLE_END)
			values[i] = TimestampTzGetDatum(end);
		else
		{
			values[i] = kvalues[k];
			nulls[i] = knulls[k++];
		}
	}
}

/* Emit one group: its key and the states combined across slots. */
static void
emit_group(ReadContext *rc, const char *key, uint32 keylen, bytea *combined)
{
	Datum *values = palloc0(sizeof(Datum) * (rc->ngroup + rc->nagg));
	bool *nulls = palloc0(sizeof(bool) * (rc->ngroup + rc->nagg));
	bytea **states = streamproc_unpack_states(combined, rc->nagg);
	int j;

	if (rc->window.kind != 0)
		decode_window_key(rc, key, keylen, values, nulls);
	else
		decode_key(rc, key, keylen, values, nulls);
	for (j = 0; j < rc->nagg; j++)
		values[rc->ngroup + j] = streamproc_agg_final(rc->aggs[j], states[j],
													  &nulls[rc->ngroup + j]);
	tuplestore_putvalues(rc->store, rc->desc, values, nulls);
	rc->emitted++;
}

static void
scan_callback(const char *key, uint32 keylen, bytea **slots, int nslots,
			  void *arg)
{
	ReadContext *rc = arg;
	bytea *combined = NULL;
	int i;

	for (i = 0; i < nslots; i++)
		if (slots[i] != NULL)
			combined = streamproc_combine_packed(rc->aggs, rc->nagg, combined, slots[i]);
	emit_group(rc, key, keylen, combined);
}

/* Emit a group combined by a GroupTable. */
static void
group_emit_callback(const char *key, uint32 keylen, bytea *state, void *arg)
{
	emit_group((ReadContext *)arg, key, keylen, state);
}

/* Read a view's groups from its last checkpoint. */
static void
read_from_checkpoint(ReadContext *rc, Oid viewid)
{
	GroupTable *groups = streamproc_group_table_create(rc->aggs, rc->nagg, CurrentMemoryContext);
	Datum arg = ObjectIdGetDatum(viewid);
	uint64 i;
	int ret;

	ret = SPI_execute_with_args("SELECT key, state FROM streamproc.view_state WHERE view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.view_state: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		bytea *key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 1, &isnull));
		bytea *state = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull));

		streamproc_group_table_add(groups, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), state);
	}
	streamproc_group_table_emit(groups, group_emit_callback, rc);
}

/* ----------------------------------------------------------------
 * Windowed views
 *
 * A window of slot s is in streamproc.window_state once it ends at or
 * before the slot's closing bound (the watermark the slot closed at minus
 * the allowed lateness; count windows: the time of the checkpoint that
 * closed them), and in shared memory (hop: as slices) otherwise.  The
 * bounds are read, with the registry lock held, together with shared
 * memory, before the closed windows, whose query takes a new snapshot
 * (read committed): worker.c publishes a slot's bound and removes the
 * windows it closed from shared memory under that lock after the commit,
 * so a window is counted from exactly one of the two places.
 * ----------------------------------------------------------------
 */

/* An open window (tumble, session) or slice (hop) of some slots. */
static void
add_open_windows(ReadContext *rc, GroupTable *table, const char *key, uint32 keylen,
				 bytea **slots, int nslots)
{
	TimestampTz start;
	TimestampTz end;
	int i;

	if (rc->window.emit == 'f')
		return; /* only closed windows */
	streamproc_window_key_decode(key, keylen, &start, &end);
	for (i = 0; i < nslots; i++)
	{
		if (slots[i] == NULL)
			continue;
		if (rc->window.kind == WINDOW_HOP)
			streamproc_group_table_add_slice(table, &rc->window, key, keylen, slots[i],
											 rc->bounds[i], DT_NOEND);
		else if (rc->window.kind == WINDOW_COUNT || end > rc->bounds[i])
			streamproc_group_table_add(table, key, keylen, slots[i]);
	}
}

typedef struct WindowScan
{
	ReadContext *rc;
	GroupTable *table;
} WindowScan;

static void
window_scan_callback(const char *key, uint32 keylen, bytea **slots, int nslots, void *arg)
{
	WindowScan *ws = arg;

	add_open_windows(ws->rc, ws->table, key, keylen, slots, nslots);
}

/* Set the slots' closing bounds from their closing watermarks. */
static void
set_bounds(ReadContext *rc, TimestampTz *closed, uint64 writers)
{
	int i;

	rc->final_bound = DT_NOEND;
	for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
	{
		rc->bounds[i] = streamproc_window_close_bound(&rc->window, closed[i]);
		if (writers & (UINT64CONST(1) << i))
			rc->final_bound = Min(rc->final_bound, rc->bounds[i]);
	}
}

static void
read_windowed(ReadContext *rc, Oid viewid)
{
	GroupTable *table = streamproc_group_table_create(rc->aggs, rc->nagg, CurrentMemoryContext);
	TimestampTz closed[STREAMPROC_MAX_SLOTS];
	Datum arg = ObjectIdGetDatum(viewid);
	ViewShared *shared;
	uint64 i;
	int ret;

	rc->bounds = palloc(sizeof(TimestampTz) * STREAMPROC_MAX_SLOTS);

	/* Open windows: from shared memory, else from the checkpoint. */
	LWLockAcquire(streamproc_state_lock(), LW_SHARED);
	shared = streamproc_state_lookup(MyDatabaseId, viewid);
	if (shared != NULL && streamproc_state_ready(shared))
	{
		dshash_table *groups = streamproc_state_attach_groups(shared);
		WindowScan ws;

		set_bounds(rc, shared->closed, shared->writers);
		ws.rc = rc;
		ws.table = table;
		streamproc_state_scan(groups, window_scan_callback, &ws);
		dshash_detach(groups);
		LWLockRelease(streamproc_state_lock());
	}
	else
	{
		uint64 writers = 0;

		LWLockRelease(streamproc_state_lock());
		for (i = 0; i < STREAMPROC_MAX_SLOTS; i++)
			closed[i] = WATERMARK_NONE;
		ret = SPI_execute_with_args("SELECT slot, watermark FROM streamproc.view_watermarks WHERE view = $1",
									1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.view_watermarks: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			int slot = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

			if (slot >= 0 && slot < STREAMPROC_MAX_SLOTS)
			{
				closed[slot] = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 2, &isnull));
				writers |= UINT64CONST(1) << slot;
			}
		}
		set_bounds(rc, closed, writers);
		ret = SPI_execute_with_args("SELECT slot, key, state FROM streamproc.view_state WHERE view = $1",
									1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.view_state: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			int slot = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			bytea *key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			bytea *slots[STREAMPROC_MAX_SLOTS];

			if (slot < 0 || slot >= STREAMPROC_MAX_SLOTS)
				continue;
			memset(slots, 0, sizeof(slots));
			slots[slot] = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
			add_open_windows(rc, table, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), slots, slot + 1);
		}
	}

	/* Closed windows (not read_only: a snapshot taken after the bounds). */
	ret = SPI_execute_with_args("SELECT slot, key, state, window_end FROM streamproc.window_state WHERE view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.window_state: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		int slot = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		bytea *key = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		TimestampTz end = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));

		if (slot < 0 || slot >= STREAMPROC_MAX_SLOTS || end > rc->bounds[slot])
			continue;
		if (rc->window.emit == 'f' && end > rc->final_bound)
			continue;
		streamproc_group_table_add(table, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
								   DatumGetByteaPCopy(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull)));
	}

	streamproc_group_table_emit(table, group_emit_callback, rc);
}

/*
 * streamproc.read_view(view oid) RETURNS SETOF record
 *		The groups of an aggregating continuous view with the final value
 *		of each aggregate; called from the view's definition, whose column
 *		definition list gives the group keys' and results' types.
 */
Datum
streamproc_read_view(PG_FUNCTION_ARGS)
{
	Oid viewid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	ReadContext rc;
	Datum arg = ObjectIdGetDatum(viewid);
	ArrayType *arr;
	Datum *elems;
	Datum *group_types;
	bool isnull;
	ViewShared *shared;
	int ret;
	int i;

	streamproc_check_preloaded();

	if (pg_class_aclcheck(viewid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(viewid));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	memset(&rc, 0, sizeof(rc));
	rc.store = rsinfo->setResult;
	rc.desc = rsinfo->setDesc;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT group_types::oid[], aggregates::oid[], agg_collations, agg_argtypes,"
								" window_kind, window_size, window_slide, window_origin, window_roles,"
								" allowed_lateness, emit"
								" FROM streamproc.views WHERE view = $1 AND kind = 'a'",
								1, (Oid[]){OIDOID}, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not an aggregating continuous view", viewid)));

	arr = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, NULL, &rc.ngroup);
	group_types = elems;
	rc.group_recv = palloc0(sizeof(FmgrInfo) * Max(rc.ngroup, 1));
	rc.group_ioparam = palloc0(sizeof(Oid) * Max(rc.ngroup, 1));
	for (i = 0; i < rc.ngroup; i++)
	{
		Oid recv;

		getTypeBinaryInputInfo(DatumGetObjectId(elems[i]), &recv, &rc.group_ioparam[i]);
		fmgr_info(recv, &rc.group_recv[i]);
	}

	rc.aggs = streamproc_lookup_view_aggs(DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
										  DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)),
										  DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull)),
										  &rc.nagg);
	/*
	 * The column definition list comes from the caller: it must match the
	 * view exactly, or values would be returned as the wrong type.
	 */
	if (rc.desc->natts != rc.ngroup + rc.nagg)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column definition list of read_view() has %d columns, continuous view has %d",
						rc.desc->natts, rc.ngroup + rc.nagg)));
	for (i = 0; i < rc.desc->natts; i++)
	{
		Oid expected = i < rc.ngroup ? DatumGetObjectId(group_types[i])
									 : rc.aggs[i - rc.ngroup]->resulttype;

		if (TupleDescAttr(rc.desc, i)->atttypid != expected)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the column definition list of read_view() has type %s, continuous view has %s",
							i + 1, format_type_be(TupleDescAttr(rc.desc, i)->atttypid),
							format_type_be(expected))));
	}

	/* Windowed views: the window, and which group columns are it. */
	(void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	if (!isnull)
	{
		HeapTuple tup = SPI_tuptable->vals[0];
		TupleDesc tdesc = SPI_tuptable->tupdesc;
		Datum *relems;
		int nroles;

		rc.window.kind = DatumGetChar(SPI_getbinval(tup, tdesc, 5, &isnull));
		rc.window.size = DatumGetInt64(SPI_getbinval(tup, tdesc, 6, &isnull));
		rc.window.slide = DatumGetInt64(SPI_getbinval(tup, tdesc, 7, &isnull));
		rc.window.origin = DatumGetTimestampTz(SPI_getbinval(tup, tdesc, 8, &isnull));
		deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, tdesc, 9, &isnull)),
						  INT2OID, sizeof(int16), true, TYPALIGN_SHORT, &relems, NULL, &nroles);
		rc.window.lateness = DatumGetInt64(SPI_getbinval(tup, tdesc, 10, &isnull));
		rc.window.emit = DatumGetChar(SPI_getbinval(tup, tdesc, 11, &isnull));
		rc.roles = palloc0(sizeof(int16) * Max(rc.ngroup, 1));
		rc.key_recv = palloc0(sizeof(FmgrInfo) * Max(rc.ngroup, 1));
		rc.key_ioparam = palloc0(sizeof(Oid) * Max(rc.ngroup, 1));
		for (i = 0; i < rc.ngroup && i < nroles; i++)
		{
			rc.roles[i] = DatumGetInt16(relems[i]);
			if (rc.roles[i] == WINDOW_ROLE_KEY)
			{
				rc.key_recv[rc.nkeys] = rc.group_recv[i];
				rc.key_ioparam[rc.nkeys++] = rc.group_ioparam[i];
			}
		}
		read_windowed(&rc, viewid);
		SPI_finish();
		return (Datum)0;
	}

	LWLockAcquire(streamproc_state_lock(), LW_SHARED);
	shared = streamproc_state_lookup(MyDatabaseId, viewid);
	if (shared != NULL && streamproc_state_ready(shared))
	{
		dshash_table *groups = streamproc_state_attach_groups(shared);

		streamproc_state_scan(groups, scan_callback, &rc);
		dshash_detach(groups);
		LWLockRelease(streamproc_state_lock());
	}
	else
	{
		LWLockRelease(streamproc_state_lock());
		read_from_checkpoint(&rc, viewid);
	}

	/* Without GROUP BY an aggregate query returns one row, even over nothing. */
	if (rc.ngroup == 0 && rc.emitted == 0)
		emit_group(&rc, "", 0, NULL);

	SPI_finish();
	return (Datum)0;
}

/*
 * streamproc._view_stats() RETURNS SETOF record
 *		Shared-memory statistics of the current database's aggregating
 *		views; streamproc.stat_views joins them with the catalog.
 */
Datum
streamproc_view_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	List *views;
	ListCell *lc;

	streamproc_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	views = streamproc_state_registered_views(MyDatabaseId, -1);
	LWLockAcquire(streamproc_state_lock(), LW_SHARED);
	foreach (lc, views)
	{
		ViewShared *v = streamproc_state_lookup(MyDatabaseId, lfirst_oid(lc));
		Datum values[9];
		bool nulls[9] = {false, false, false, false, false, false, false, false, false};

		if (v == NULL)
			continue;
		values[0] = ObjectIdGetDatum(v->viewid);
		values[1] = Int64GetDatum((int64)v->events);
		values[2] = Int64GetDatum(v->groups_count);
		values[3] = Int64GetDatum(v->memory);
		values[4] = BoolGetDatum(streamproc_state_ready(v));
		if (v->last_checkpoint != 0)
		{
			values[5] = TimestampTzGetDatum(v->last_checkpoint);
			values[6] = Float8GetDatum(v->last_checkpoint_ms);
		}
		else
			nulls[5] = nulls[6] = true;
		values[7] = TimestampTzGetDatum(v->watermark);
		nulls[7] = TIMESTAMP_NOT_FINITE(v->watermark);
		values[8] = Int64GetDatum((int64)v->late_events);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(streamproc_state_lock());
	return (Datum)0;
}
