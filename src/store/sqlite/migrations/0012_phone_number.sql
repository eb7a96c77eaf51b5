-- The number a user confirmed for codes by text message.
ALTER TABLE users ADD COLUMN phone TEXT;
