ALTER TABLE users ADD COLUMN enrolment_open_until BIGINT;
