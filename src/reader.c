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
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "aggregates.h"
#include "launcher.h"
#include "state.h"
#include "streamproc.h"
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

/* Emit one group: its key and the states combined across slots. */
static void
emit_group(ReadContext *rc, const char *key, uint32 keylen, bytea *combined)
{
	Datum *values = palloc0(sizeof(Datum) * (rc->ngroup + rc->nagg));
	bool *nulls = palloc0(sizeof(bool) * (rc->ngroup + rc->nagg));
	bytea **states = streamproc_unpack_states(combined, rc->nagg);
	int j;

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

/* One key of the checkpoint fallback's hash table. */
typedef struct CheckpointGroup
{
	char *key; /* the hash key: pointer to a bytea (see below) */
	bytea *state;
} CheckpointGroup;

static uint32
checkpoint_key_hash(const void *key, Size keysize)
{
	bytea *k = *(bytea *const *)key;

	return hash_bytes((const unsigned char *)VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k));
}

static int
checkpoint_key_match(const void *key1, const void *key2, Size keysize)
{
	bytea *a = *(bytea *const *)key1;
	bytea *b = *(bytea *const *)key2;

	if (VARSIZE_ANY_EXHDR(a) != VARSIZE_ANY_EXHDR(b))
		return 1;
	return memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a));
}

/* Read a view's groups from its last checkpoint. */
static void
read_from_checkpoint(ReadContext *rc, Oid viewid)
{
	HASHCTL ctl;
	HTAB *groups;
	HASH_SEQ_STATUS seq;
	CheckpointGroup *g;
	Datum arg = ObjectIdGetDatum(viewid);
	uint64 i;
	int ret;

	ctl.keysize = sizeof(bytea *);
	ctl.entrysize = sizeof(CheckpointGroup);
	ctl.hash = checkpoint_key_hash;
	ctl.match = checkpoint_key_match;
	ctl.hcxt = CurrentMemoryContext;
	groups = hash_create("streamproc checkpoint groups", 1024, &ctl,
						 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);

	ret = SPI_execute_with_args("SELECT key, state FROM streamproc.view_state WHERE view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.view_state: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		bytea *key = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull));
		bytea *state = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull));
		bool found;

		g = hash_search(groups, &key, HASH_ENTER, &found);
		g->state = streamproc_combine_packed(rc->aggs, rc->nagg, found ? g->state : NULL, state);
	}

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		bytea *key = (bytea *)g->key;

		emit_group(rc, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), g->state);
	}
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
	ret = SPI_execute_with_args("SELECT group_types::oid[], aggregates::oid[], agg_collations, agg_argtypes"
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
		Datum values[7];
		bool nulls[7] = {false, false, false, false, false, false, false};

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
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(streamproc_state_lock());
	return (Datum)0;
}
