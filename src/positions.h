/*-------------------------------------------------------------------------
 *
 * positions.h
 *	  Where each continuous view is in each of its inputs (see positions.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_POSITIONS_H
#define STREAMPROC_POSITIONS_H

#include "postgres.h"

#include "storage/block.h"

/*
 * A view's position in one shard of a stream's log: the log rows whose
 * "$xid" is visible in done have been merged; when cur is set, so have the
 * rows visible in cur and not in done that lie in blocks below next_block
 * (a batch merged in pieces).  done and cur are pg_snapshot values (cur may
 * be 0).
 */
typedef struct LogPosition
{
	Datum done;
	Datum cur;
	BlockNumber next_block;
} LogPosition;

/* Names of inputs in streamproc.positions. */
extern char *position_log_input(int shard);
extern char *position_kafka_input(const char *source, int32 partition);

extern char *position_log_text(const LogPosition *pos);
extern void position_log_parse(const char *text, LogPosition *pos);

/*
 * The positions of a view, in a transaction with SPI: calls cb for each
 * (input, position) row.
 */
typedef void (*PositionCallback)(const char *input, const char *position,
								 void *arg);
extern void positions_load(Oid view, PositionCallback cb, void *arg);

/* Write or delete one position, in the checkpoint's transaction. */
extern void positions_save(Oid view, const char *input, const char *position);
extern void positions_delete(Oid view, const char *input);

/* The log positions of every view of a stream in one shard (text list). */
extern List *positions_of_shard(Oid stream, int shard);

#endif /* STREAMPROC_POSITIONS_H */
