-- The system of record: the current row of every payment and refund, every
-- version of each as an immutable event, and the money movements finance
-- reconciles.  Times are milliseconds since the epoch, as in the records.

CREATE TABLE payments (
    id                 text PRIMARY KEY,
    tenant             text    NOT NULL,
    livemode           boolean NOT NULL,
    state              text    NOT NULL,
    amount             bigint  NOT NULL,
    currency           text    NOT NULL,
    acquirer           text,
    acquirer_reference text,
    merchant_reference text,
    created_ms         bigint  NOT NULL,
    updated_ms         bigint  NOT NULL,
    version            integer NOT NULL,
    record             jsonb   NOT NULL
);
CREATE INDEX payments_by_created ON payments (tenant, created_ms DESC, id DESC);
CREATE INDEX payments_by_reference ON payments (tenant, merchant_reference, created_ms DESC, id DESC)
    WHERE merchant_reference IS NOT NULL;
CREATE INDEX payments_by_state ON payments (tenant, state, created_ms DESC, id DESC);
CREATE INDEX payments_by_acquirer ON payments (tenant, acquirer, created_ms DESC, id DESC);
CREATE INDEX payments_by_age ON payments (updated_ms);

CREATE TABLE refunds (
    id                 text PRIMARY KEY,
    payment_id         text    NOT NULL,
    tenant             text    NOT NULL,
    state              text    NOT NULL,
    amount             bigint  NOT NULL,
    currency           text    NOT NULL,
    acquirer           text    NOT NULL,
    acquirer_reference text,
    created_ms         bigint  NOT NULL,
    updated_ms         bigint  NOT NULL,
    version            integer NOT NULL,
    record             jsonb   NOT NULL
);
CREATE INDEX refunds_by_payment ON refunds (payment_id);

CREATE TABLE events (
    record_kind    text    NOT NULL,
    record_id      text    NOT NULL,
    version        integer NOT NULL,
    payment_id     text    NOT NULL,
    tenant         text    NOT NULL,
    state          text    NOT NULL,
    previous_state text,
    source         text    NOT NULL,
    at_ms          bigint  NOT NULL,
    record         jsonb   NOT NULL,
    PRIMARY KEY (record_kind, record_id, version)
);
CREATE INDEX events_by_payment ON events (payment_id, at_ms);

CREATE TABLE movements (
    movement_key       text PRIMARY KEY,
    kind               text    NOT NULL,
    payment_id         text    NOT NULL,
    refund_id          text,
    tenant             text    NOT NULL,
    livemode           boolean NOT NULL,
    amount             bigint  NOT NULL,
    currency           text    NOT NULL,
    acquirer           text    NOT NULL,
    acquirer_reference text,
    at_ms              bigint  NOT NULL
);
CREATE INDEX movements_by_time ON movements (at_ms);
CREATE INDEX movements_by_payment ON movements (payment_id);
