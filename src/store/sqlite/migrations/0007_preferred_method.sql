ALTER TABLE users ADD COLUMN preferred_method TEXT;
