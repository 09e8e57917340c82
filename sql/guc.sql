--
-- Configuration parameters under the reserved "streamproc." prefix.
--
SELECT name, setting, unit, context, vartype, min_val, max_val, boot_val
  FROM pg_settings
 WHERE name LIKE 'streamproc.%'
 ORDER BY name;

-- Units are shown the way users write them.
SHOW streamproc.max_batch_delay;
SHOW streamproc.checkpoint_interval;
SHOW streamproc.state_memory;

-- The prefix is reserved: a misspelt name is an error, not a placeholder.
SET streamproc.batchsize = 10;
SHOW streamproc.batchsize;

-- Worker settings change with a reload, not per session.
SET streamproc.batch_size = 500;
-- The number of workers sizes shared memory: only at server start.
SET streamproc.workers = 4;
ALTER SYSTEM SET streamproc.workers = 4;
ALTER SYSTEM RESET streamproc.workers;

-- Ranges are enforced, with units.
ALTER SYSTEM SET streamproc.batch_size = 0;
ALTER SYSTEM SET streamproc.max_batch_delay = '2min';
ALTER SYSTEM SET streamproc.checkpoint_interval = '5ms';
ALTER SYSTEM SET streamproc.state_memory = '512kB';
ALTER SYSTEM SET streamproc.state_memory = '1GB';
ALTER SYSTEM RESET streamproc.state_memory;
