/*-------------------------------------------------------------------------
 *
 * positions.c
 *	  Where each continuous view is in each of its inputs:
 *	  streamproc.positions.
 *
 * Every view keeps its own position in every input it reads, committed by
 * the checkpoint that commits the state it produced, so that one view can
 * stop (a failure, the memory budget) and go on later while the others
 * keep going, and so that a new view starts where it was created.
 *
 *	- A shard of a stream's log (input "log <shard>"): a pg_snapshot; the
 *	  log rows whose inserting transaction is visible in it are merged
 *	  (PgQ's tick).  A batch merged in pieces (bounded by memory) adds the
 *	  snapshot of the batch and the block it has reached: "done|cur|block".
 *	  CREATE VIEW writes the first one.  The log keeps every row that some
 *	  view's position does not cover (the trim in checkpoint.c).
 *	- A partition of a Kafka source (input "kafka <source> <partition>"):
 *	  the offset of the next message the view needs.  Only views behind the
 *	  source's own position (streamproc.kafka_offsets) have a row; the
 *	  source's consumer starts at the least of them.
 *
 * The table is the extension's, written only by CREATE VIEW and the
 * workers' checkpoints, under the locks and transactions that write the
 * state it goes with.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "positions.h"

char *
position_log_input(int shard)
{
	return psprintf("log %d", shard);
}

char *
position_kafka_input(const char *source, int32 partition)
{
	return psprintf("kafka %s %d", source, partition);
}

char *
position_log_text(const LogPosition *pos)
{
	char *done = pos->done ? DatumGetCString(DirectFunctionCall1(pg_snapshot_out, pos->done)) : "";

	if (pos->cur == (Datum)0)
		return pstrdup(done);
	return psprintf("%s|%s|%u", done,
					DatumGetCString(DirectFunctionCall1(pg_snapshot_out, pos->cur)),
					pos->next_block);
}

void
position_log_parse(const char *text, LogPosition *pos)
{
	char *copy = pstrdup(text);
	char *bar = strchr(copy, '|');

	pos->done = (Datum)0;
	pos->cur = (Datum)0;
	pos->next_block = 0;
	if (bar != NULL)
	{
		char *bar2;

		*bar = '\0';
		bar2 = strchr(bar + 1, '|');
		if (bar2 == NULL)
			elog(ERROR, "invalid log position \"%s\"", text);
		*bar2 = '\0';
		pos->cur = DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(bar + 1));
		pos->next_block = (BlockNumber)strtoul(bar2 + 1, NULL, 10);
	}
	if (copy[0] != '\0')
		pos->done = DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(copy));
	pfree(copy);
}

void
positions_load(Oid view, PositionCallback cb, void *arg)
{
	Datum args[1];
	uint64 i;
	int ret;

	args[0] = ObjectIdGetDatum(view);
	ret = SPI_execute_with_args("SELECT input, position FROM streamproc.positions WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.positions: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
		cb(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
		   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), arg);
}

void
positions_save(Oid view, const char *input, const char *position)
{
	Datum args[3];
	int ret;

	args[0] = ObjectIdGetDatum(view);
	args[1] = CStringGetTextDatum(input);
	args[2] = CStringGetTextDatum(position);
	ret = SPI_execute_with_args("INSERT INTO streamproc.positions AS p (view, input, position)"
								" VALUES ($1, $2, $3)"
								" ON CONFLICT (view, input) DO UPDATE SET position = excluded.position",
								3, (Oid[]){OIDOID, TEXTOID, TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.positions: %s", SPI_result_code_string(ret));
}

void
positions_delete(Oid view, const char *input)
{
	Datum args[2];
	int ret;

	args[0] = ObjectIdGetDatum(view);
	args[1] = CStringGetTextDatum(input);
	ret = SPI_execute_with_args("DELETE FROM streamproc.positions WHERE view = $1 AND input = $2",
								2, (Oid[]){OIDOID, TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not write streamproc.positions: %s", SPI_result_code_string(ret));
}

/*
 * positions_of_shard
 *		The distinct positions (text) of the views of a stream in one shard
 *		of its log, as committed: what the log must keep.
 */
List *
positions_of_shard(Oid stream, int shard)
{
	Datum args[2];
	List *result = NIL;
	uint64 i;
	int ret;

	args[0] = ObjectIdGetDatum(stream);
	args[1] = CStringGetTextDatum(position_log_input(shard));
	ret = SPI_execute_with_args("SELECT DISTINCT p.position FROM streamproc.positions p"
								" JOIN streamproc.views v ON v.view = p.view"
								" WHERE v.stream = $1 AND p.input = $2",
								2, (Oid[]){OIDOID, TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.positions: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return result;
}
