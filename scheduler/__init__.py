"""The term timetable: matches rural classrooms' missing subject hours with master-teacher
classes (OR-Tools CP-SAT), explains unmet needs and exports calendars.

Reading order: `model` (the data) ← `inputs` (+ `io_json`, `io_csv`, `tables`: validated input) →
`candidates` and `structure` (which pairs can meet, which limits bind) → `solver` (CP-SAT, in
lexicographic stages; `greedy` and `lp_bound` give hints, a baseline and an upper bound) →
`pipeline` (timetable + `explain` + `minimal` change) → `validate` (independent checker),
`export`/`views` (JSON, CSV, iCalendar, HTML), `apply` (lessons through `ports.LessonPort`),
`cli` and `http`.
"""
