"""The admin console (`/admin`): schools and classrooms, lessons with their join links and QR
codes, what is live, the term timetable, and an audit log of every admin action.

- `directory`: schools and classrooms kept in the database, CSV import and export (the
  timetable input's `schools.csv` and `classrooms.csv`);
- `audit`: who did what, when, to what (table ``admin_audit``);
- `links`: join links of a lesson's classrooms, with their expiry and a QR code (segno, SVG);
- `lessons`: lesson JSON from directory ids, and the live state of lessons;
- `routes`: the pages and the JSON API (every call an admin's: `sfu.http_api.require_admin`);
- `timetable`: upload, solve with progress, unmet needs, check and apply a week (the scheduler's code).
"""
