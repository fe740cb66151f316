"""The solvers, pure (no database, no web): ranking units for one incident, assigning
units to many incidents (OR-Tools), allocating supplies and placing evacuees in shelters.
command/planning gathers their input and stores their answers."""
