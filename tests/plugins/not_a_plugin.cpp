// A shared library without Cohort's entry point.
extern "C" int just_a_library() { return 42; }
