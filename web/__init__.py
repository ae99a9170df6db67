"""The pages people use: lesson page, recordings, patrol wall, timetables and reports."""
