-- Usage reports: what each billing period cost, at the runtime price in force
-- when it was recorded (periods recorded before runtime was priced cost 0),
-- and indexes for reading metering rows by date.
ALTER TABLE billing_periods ADD COLUMN cost_usd double precision NOT NULL DEFAULT 0;
CREATE INDEX billing_periods_start ON billing_periods (period_start);
CREATE INDEX model_usage_recorded ON model_usage (recorded_at);
