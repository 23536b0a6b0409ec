-- Issue 15: task_details keeps no foreign key to tasks. The key's check ran
-- once per task created (a trigger's SELECT ... FOR KEY SHARE of the task
-- row the same statement had just inserted), which wrote a lock record
-- (54 bytes of WAL) and dirtied the task's page again for nothing: a row of
-- task_details is written only by CreateTasks, in the statement that
-- inserts its task and for the tasks that statement inserted, and tasks
-- are never deleted, so each row has its task by construction.
ALTER TABLE task_details DROP CONSTRAINT task_details_task_id_fkey;
