"""The page's tabs, one module each; each exposes one function that builds the tab's components and
wires their events, given the services (mnist_web/services.py) and the shared state it needs:

    draw      the stroke canvas, the live label, the model picker, "Show why"   -> draw_tab()
    network   the Draw tab's "inside the network" view and its API               -> network_panel()
    inspect   where the chosen model goes wrong                                   -> inspect_tab()
    train     training from the page, comparing and managing runs                 -> train_tab()
    panels    the evidence + look-alikes panel that Draw and Inspect both show
demo.py puts them in one tab bar.
"""
