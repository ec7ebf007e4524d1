-- Whether the caller was handed to the satisfaction survey (the agent's leaving is then a
-- hand-off, not a hang-up on the customer), scored or not.
ALTER TABLE calls ADD COLUMN survey_offered INTEGER NOT NULL DEFAULT 0;
