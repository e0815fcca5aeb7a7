"""A Streamlit app with a background job and the jobs view (seed 004's "Jobs" tab, built in).

    pip install "jobhandle[streamlit]"
    streamlit run examples/streamlit_app.py

Submit a few jobs from the sidebar and watch them in the view; they run in this app's worker threads (one
JobManager for the whole Streamlit server, in jobs.db next to where you start it).
"""

import time

import streamlit as st

from jobhandle import JobManager
from jobhandle.job_management import render_job_management


def count_to(ctx, n: int = 10):
    for i in range(n):
        if ctx.cancelled:
            return {"stopped_at": i}
        ctx.progress((i + 1) / n, f"counted to {i + 1}")
        time.sleep(0.5)
    return {"counted": n}


@st.cache_resource
def manager() -> JobManager:
    m = JobManager("jobs.db", max_workers=2)
    m.register_handler("count_to", count_to)
    m.start()
    return m


st.title("jobhandle in Streamlit")
with st.sidebar:
    n = st.number_input("Count to", min_value=1, max_value=100, value=10)
    if st.button("Submit a job", type="primary"):
        job_id = manager().submit_job("count_to", {"n": int(n)})
        st.success(f"Job {job_id[:8]} submitted: it runs in the background")
    if st.button("Refresh"):
        st.rerun()
render_job_management(manager())
