"""Pictures: figures and animations (``figures``) and the states of the forward and reverse processes they show
(``processes``)."""
