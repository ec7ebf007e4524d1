-- Whether the caller was handed to the satisfaction survey (twin of
-- migrations/sqlite/0007_survey_offered.sql).
ALTER TABLE calls ADD COLUMN survey_offered SMALLINT NOT NULL DEFAULT 0;
