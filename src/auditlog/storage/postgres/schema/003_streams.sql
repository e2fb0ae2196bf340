-- Log streams (auditlog.model.streams): each tenant's standing orders to push its events to a
-- destination. The definition is changed by the admin API; position and the counters only by
-- the process holding the stream's delivery lease (lease_owner until lease_until_us, in
-- microseconds of the database's clock, so that the processes' own clocks never disagree).
CREATE TABLE streams (
    tenant          text NOT NULL,
    stream_id       text NOT NULL,
    name            text NOT NULL,
    destination     text NOT NULL,
    filter          text NOT NULL,
    start_seq       bigint NOT NULL,
    paused          boolean NOT NULL,
    created_us      bigint NOT NULL,
    updated_us      bigint NOT NULL,
    position        bigint NOT NULL,
    deliveries      bigint NOT NULL DEFAULT 0,
    failures        bigint NOT NULL DEFAULT 0,
    last_success_us bigint,
    last_error      text,
    last_error_us   bigint,
    lease_owner     text,
    lease_until_us  bigint,
    PRIMARY KEY (tenant, stream_id)
);
