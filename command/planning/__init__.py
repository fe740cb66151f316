"""The planning room: adapters that gather from the database, ask a dispatch/ solver and
answer. The recommendation for one incident, a plan for many, supply allocation and
evacuation to shelters. The solvers stay pure in dispatch/."""
