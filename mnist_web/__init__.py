"""mnist_web: the Gradio app's server side and its front-end files. It imports `mnist_core` (the ML
library); `mnist_core` never imports this package. `demo.py` wires these parts into the app.

Modules, by what they hold:
    handlers          what each event of the app does (plain functions and generators)
    components        the app's Gradio components (the stroke canvas, the API sketchpad, the label)
    training_service  one training run at a time for the app, streamed as small updates
    views             small HTML values (+ train_views: live SVG charts; insight_views: heat maps)
    webguard          a public server's bounds: Host/Origin checks, body limits, bounded logs, address
    web/              the Draw tab's canvas (gr.HTML custom component: html, css, js; no JS build)
"""
