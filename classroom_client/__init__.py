"""The headless classroom terminal: joins a lesson, publishes camera/mic (or a file or a test
pattern) and receives the other classrooms, measuring what it sees and hears."""
