"""Lesson study over the recordings, patrol of live lessons, and usage reports.

- `access`: who may read, comment, evaluate, patrol and read reports (from a join token's claims);
- `directory`: the school, county and teacher of a lesson's classrooms (lesson extras, timetables);
- `comments`, `rubric`: comments at moments of a recording, and evaluations against a rubric;
- `library`: the recordings catalog joined with lessons, and each archive's classroom analysis;
- `patrol`: what is live now and what the timetable says should be;
- `reports`: usage per rural classroom, school, county and subject (开课率, minutes, activity).

The HTTP routes and pages are in `web.study_routes`; durable state is SQL (SQLAlchemy Core) in
the lesson server's database, tables prefixed ``study_``.
"""
