"""mnist_web: the Gradio app's server side and its front-end files. It imports `mnist_core` (the ML
library); `mnist_core` never imports this package. `demo.py` lays out the page from these parts.

Modules, by what they hold:
    services          the app's options (AppOptions) and the services built from them once per server:
                      model registry, run store, insight, units, training, and the handlers over them
    serving           the command line, the App (page + services + routes, put together by assemble),
                      launch() with the app's CSS, routes and bounds
    routes            the plain HTTP routes beside Gradio's: /mnist/weights, /mnist/unit,
                      /mnist/activations, /mnist/lookalikes, /mnist/digits, /queue_status
    tabs/             one module per tab (draw, network, inspect, train), each one function that builds
                      its components and wires their events; panels: the evidence + look-alikes panel;
                      mydigits: the Draw tab's "It's a ..." buttons and My digits panel (teach, zip)
    handlers          what each event of the Draw, Inspect and Train tabs does (plain functions, generators)
    teaching          "teach it your handwriting": /teach (a queued job), My digits as a zip and back
    network           the network view's server side: /activations, /unit and their plain routes
    lookalike_routes  GET /mnist/lookalikes (a model's quantised look-alike index) and /mnist/digits
    weights           GET /mnist/weights: the chosen model's folded weights for the page's own network
    queue_status      GET /queue_status: the training queue as JSON
    components        the app's Gradio components (stroke canvas, network view, train view, queue line,
                      the bounded API sketchpad, the label)
    assets            the front-end files as strings: the app's stylesheet and <head>, web_file()
    views             small HTML values: the prediction view, the confusion table
    insight_views     heat maps, look-alike strips and gallery items for the insight views
    train_views       the Train tab's values: live SVG charts, status line, queue sentences
    training_service  TrainingService: the facade the app uses for training (submit, stream, stop, status)
    train_scheduler   who waits and who runs: admission, one job per owner, positions, ETA (no threads)
    train_queue       the ETA arithmetic: a run's clock, the measured pace, when a waiting job starts
    train_runner      one job's life: dispatch to the backend, relay its events, save the run, prune
    train_updates     what a /train stream yields (TrainUpdate) and how a run's events become updates
    train_backend     what a backend is (the protocol) and its errors
    backends          where jobs run: worker processes of this machine (default), or a thread
    ray_backend       jobs on a Ray cluster (only imported with --ray)
    owners            who a request is: the visitor's owner (a token kept in the browser) and client address
    webguard          a public server's bounds: Host/Origin checks, body limits, bounded routes (503),
                      bounded logs, address
    web/              the front end (gr.HTML components: html, css, js; no JS build): kit.js is the
                      shared toolkit and the one object components talk through; app.css, charts.css
                      the app's stylesheet
"""
